from multiprocessing import Process, Value
import time

def add(val):
    for i in range(10000):
        val.value += 1
def subtract(val):
    for i in range(10000):
        val.value -= 1
if __name__ == "__main__":
    # Create Value Object
    val = Value('i', 1) # i represents integer and 1 is the initial value
    p1 = Process(target=add, args=(val, ))
    p2 = Process(target=subtract, args=(val, ))
    # Start the Tasks
    p1.start()
    p2.start()
    # Wait for the Tasks to complete
    p1.join()
    p2.join()
    print("Value is {0}".format(val.value))
