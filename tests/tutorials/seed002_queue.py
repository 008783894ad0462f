from multiprocessing import Process, Queue

# Function to square numbers and put results in a queue
def square_numbers(numbers, queue):
    for num in numbers:
        queue.put(num * num)

# Function to cube numbers and put results in a queue
def cube_numbers(numbers, queue):
    for num in numbers:
        queue.put(num * num * num)

# Main process
if __name__ == '__main__':
    numbers = range(1, 6)
    queue = Queue()

    # Create processes
    p1 = Process(target=square_numbers, args=(numbers, queue))
    p2 = Process(target=cube_numbers, args=(numbers, queue))

    # Start processes
    p1.start()
    p2.start()

    # Wait for processes to finish
    p1.join()
    p2.join()

    # Get results from queue
    results = []
    while not queue.empty():
        results.append(queue.get())
    print("Results:", results) # [1, 1, 4, 8, 9, 27, 16, 64, 25, 125]
