from multiprocessing import Process, Value, Lock
import time

def add(val, lock):
    for i in range(10000):
        lock.acquire() # Acquire Lock
        val.value += 1
        lock.release() # Release the lock
def subtract(val, lock):
    for i in range(10000):
        with lock:     # Alternate method to create a lock
            val.value -= 1
if __name__ == "__main__":
    lock = Lock()
    val = Value('i', 1) # i represents integer and 1 is the initial value
    p1 = Process(target=add, args=(val, lock))
    p2 = Process(target=subtract, args=(val, lock))
    p1.start()
    p2.start()
    p1.join()
    p2.join()
    print("Value is {0}".format(val.value))
