from multiprocessing import Process, Value, Array

# Function to modify shared data
def worker(shared_num, shared_arr):
    shared_num.value += 1
    for i in range(len(shared_arr)):
        shared_arr[i] *= 2

# Main process
if __name__ == '__main__':
    # Create shared objects
    num = Value('i', 0) # 'i' for integer
    arr = Array('d', [1.0, 2.0, 3.0]) # 'd' for double

    # Create and start processes
    processes = []
    for _ in range(4):
        p = Process(target=worker, args=(num, arr))
        processes.append(p)
        p.start()

    # Wait for all processes to complete
    for p in processes:
        p.join()

    print("Shared number:", num.value) # 4 (each process increments by 1)
    print("Shared array:", arr[:]) # [16.0, 32.0, 48.0] (each process doubles values)
